//! The string enums of an event: trigger, vendor, write status.

use crate::wire_enum::wire_enum;

wire_enum! {
    /// What happened: the webhook trigger of an event.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::EventType;
    ///
    /// let trigger: EventType = "DATA_UPDATE".parse().unwrap();
    /// assert_eq!(trigger, EventType::DataUpdate);
    /// assert_eq!(trigger.as_str(), "DATA_UPDATE");
    /// // A trigger Propexo adds later still parses:
    /// assert_eq!("DATA_DELETE".parse::<EventType>().unwrap(), EventType::Unknown("DATA_DELETE".into()));
    /// ```
    pub enum EventType {
        /// A new record of a subscribed model (`DATA_NEW`).
        DataNew => "DATA_NEW",
        /// An existing record changed (`DATA_UPDATE`).
        DataUpdate => "DATA_UPDATE",
        /// A periodic or on-demand sync finished, not the first (`SYNC_COMPLETE`).
        SyncComplete => "SYNC_COMPLETE",
        /// The initial sync of an integration finished (`FIRST_SYNC_COMPLETE`).
        FirstSyncComplete => "FIRST_SYNC_COMPLETE",
        /// An integration job failed after its retries (`JOB_FAILURE`).
        JobFailure => "JOB_FAILURE",
        /// An integration job succeeded (`JOB_SUCCESS`).
        JobSuccess => "JOB_SUCCESS",
        /// A write to the property management system failed fully or partly
        /// (`WRITE_OPERATION_FAILURE`).
        WriteOperationFailure => "WRITE_OPERATION_FAILURE",
    }
}

wire_enum! {
    /// The property management system (or CRM) an integration talks to.
    pub enum Vendor {
        /// AppFolio.
        AppFolio => "APPFOLIO",
        /// Buildium.
        Buildium => "BUILDIUM",
        /// EliseAI.
        EliseAi => "ELISEAI",
        /// Entrata.
        Entrata => "ENTRATA",
        /// Funnel.
        Funnel => "FUNNEL",
        /// Propexo-internal integrations.
        Internal => "INTERNAL",
        /// Knock.
        Knock => "KNOCK",
        /// MRI Software.
        Mri => "MRI",
        /// Propertyware (SOAP API).
        Propertyware => "PROPERTYWARE",
        /// Propertyware (REST API).
        PropertywareRest => "PROPERTYWARE_REST",
        /// RealPage.
        RealPage => "REALPAGE",
        /// RealPage RPX.
        RealPageRpx => "REALPAGE_RPX",
        /// RentCafe.
        RentCafe => "RENTCAFE",
        /// Rent Manager.
        RentManager => "RENTMANAGER",
        /// Rentvine.
        Rentvine => "RENTVINE",
        /// ResMan.
        ResMan => "RESMAN",
        /// Propexo's first sample vendor.
        Sample1 => "SAMPLE1",
        /// Propexo's second sample vendor.
        Sample2 => "SAMPLE2",
        /// Propexo's third sample vendor.
        Sample3 => "SAMPLE3",
        /// Yardi (SOAP API).
        Yardi => "YARDI",
        /// Yardi (REST API).
        YardiRest => "YARDI_REST",
    }
}

wire_enum! {
    /// How a write to the property management system ended.
    pub enum WriteStatus {
        /// Part of the write was applied.
        PartialSuccess => "PARTIAL_SUCCESS",
        /// Nothing was written.
        Failure => "FAILURE",
    }
}
